//! Commands and scripts, in parapet's own types: no type of the `redis` crate appears in
//! parapet's public API, so it can be upgraded without breaking users.

use std::sync::Arc;

use crate::StoreError;

mod sealed {
    /// Implemented for the argument types a command accepts.
    pub trait Arg {
        fn push_to(&self, cmd: &mut redis::Cmd);
    }
    /// Implemented for every reply type the `redis` crate can decode.
    pub trait Reply: redis::FromRedisValue {}
    impl<T: redis::FromRedisValue> Reply for T {}
}

/// A value that can be sent as a command argument: text, bytes or an integer.
pub trait ToArg: sealed::Arg {}

/// A type a reply can be read as: `()`, integers, `bool`, `String`, `Vec<u8>`, and
/// `Option`s, `Vec`s and pairs of them.
pub trait FromReply: sealed::Reply {}

macro_rules! args {
    ($($t:ty),*) => {$(
        impl sealed::Arg for $t {
            fn push_to(&self, cmd: &mut redis::Cmd) {
                cmd.arg(self);
            }
        }
        impl ToArg for $t {}
    )*};
}
args!(str, String, [u8], Vec<u8>, i64, u64, i32, u32, usize);

impl<T: ToArg + ?Sized> sealed::Arg for &T {
    fn push_to(&self, cmd: &mut redis::Cmd) {
        (**self).push_to(cmd);
    }
}
impl<T: ToArg + ?Sized> ToArg for &T {}

macro_rules! replies {
    ($($t:ty),*) => {$( impl FromReply for $t {} )*};
}
replies!((), i64, u64, i32, u32, usize, bool, String, Vec<u8>);
impl<T: FromReply> FromReply for Option<T> {}
impl<T: FromReply> FromReply for Vec<T> {}
impl<A: FromReply, B: FromReply> FromReply for (A, B) {}

/// One Redis command, such as `DEL key` or `PUBLISH channel message`.
///
/// ```
/// use parapet_core::Command;
/// let mut del = Command::new("DEL");
/// del.arg("parapet:rl:a").arg("parapet:rl:b");
/// ```
#[derive(Clone)]
pub struct Command(pub(crate) redis::Cmd);

impl Command {
    /// A command named `name` (`GET`, `DEL`, …) with no arguments yet.
    pub fn new(name: &str) -> Self {
        Self(redis::cmd(name))
    }

    /// Appends an argument.
    pub fn arg(&mut self, arg: impl ToArg) -> &mut Self {
        sealed::Arg::push_to(&arg, &mut self.0);
        self
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Arguments may hold keys or secrets: name the command only.
        let name = self
            .0
            .args_iter()
            .next()
            .and_then(|arg| match arg {
                redis::Arg::Simple(bytes) => std::str::from_utf8(bytes).ok(),
                _ => None,
            })
            .unwrap_or("?");
        f.debug_tuple("Command").field(&name).finish()
    }
}

/// A Lua script, run with `EVALSHA` and, when the server does not have it (`NOSCRIPT`:
/// after a restart, a failover or `SCRIPT FLUSH`), with `EVAL` on the same node, which also
/// caches it there again. No other node is involved, so one frozen Cluster node cannot turn
/// a script flush elsewhere into a timeout.
#[derive(Clone)]
pub struct Script {
    code: Arc<str>,
    hash: Arc<str>,
}

impl Script {
    /// A script from its source.
    pub fn new(code: &str) -> Self {
        let hash = redis::Script::new(code).get_hash().into();
        Self {
            code: code.into(),
            hash,
        }
    }

    /// The SHA-1 of the source (what `EVALSHA` names).
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The source.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// Starts a call with `keys` keys: add exactly that many with [`ScriptCall::key`] first,
    /// then the arguments.
    pub fn call(&self, keys: usize) -> ScriptCall {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&*self.hash).arg(keys);
        ScriptCall {
            script: self.clone(),
            cmd,
            keys_declared: keys,
            keys_added: 0,
        }
    }
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Script").field(&self.hash).finish()
    }
}

/// One invocation of a [`Script`]: its keys, then its arguments.
#[derive(Clone)]
pub struct ScriptCall {
    script: Script,
    cmd: redis::Cmd,
    keys_declared: usize,
    keys_added: usize,
}

impl ScriptCall {
    /// Appends a key (all keys come before the arguments; on Cluster they must share one
    /// hash tag).
    pub fn key(&mut self, key: impl ToArg) -> &mut Self {
        self.keys_added += 1;
        sealed::Arg::push_to(&key, &mut self.cmd);
        self
    }

    /// Appends an argument.
    pub fn arg(&mut self, arg: impl ToArg) -> &mut Self {
        sealed::Arg::push_to(&arg, &mut self.cmd);
        self
    }

    pub(crate) fn evalsha(&self) -> Result<&redis::Cmd, StoreError> {
        if self.keys_added == self.keys_declared {
            Ok(&self.cmd)
        } else {
            Err(StoreError::InvalidArgument(
                "a script call got another number of keys than it declared",
            ))
        }
    }

    /// The same call as `EVAL` of the source, for a server that lost the script.
    pub(crate) fn eval(&self) -> redis::Cmd {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(&*self.script.code);
        for arg in self.cmd.args_iter().skip(2) {
            if let redis::Arg::Simple(bytes) = arg {
                cmd.arg(bytes);
            }
        }
        cmd
    }
}

impl std::fmt::Debug for ScriptCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptCall")
            .field("script", &self.script)
            .field("keys", &self.keys_added)
            .finish_non_exhaustive()
    }
}
