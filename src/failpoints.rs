//! Named points where a test can make a cycle stop dead, as if the process were killed there
//! (between a POST and its commit, say). Unarmed in production: a check is one map lookup.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Failpoints {
    armed: Mutex<HashMap<&'static str, u32>>,
}

/// A failpoint fired: the cycle must stop without committing anything more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("failpoint `{0}` fired: the cycle stopped as if the process had died")]
pub struct Crashed(pub &'static str);

impl Failpoints {
    /// Fires at the `nth` (1-based) time `name` is reached.
    pub fn arm(&self, name: &'static str, nth: u32) {
        self.armed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, nth);
    }

    pub fn check(&self, name: &'static str) -> Result<(), Crashed> {
        let mut armed = self.armed.lock().unwrap_or_else(|e| e.into_inner());
        match armed.get_mut(name) {
            Some(left) if *left <= 1 => {
                armed.remove(name);
                Err(Crashed(name))
            }
            Some(left) => {
                *left -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}
