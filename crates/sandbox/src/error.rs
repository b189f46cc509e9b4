//! Error types. Grouped by fault: the caplet broke a rule or hit a limit
//! ([`CallError`]), the module is not acceptable ([`LoadError`]), or the
//! host could not be set up ([`SetupError`]).
//!
//! None of these carries a backtrace, an address or a host path. The text
//! handed to other parties (the reason a promise is broken with) is
//! [`CallError::public_reason`], a fixed string per kind.
//!
//! This module depends on nothing else in the crate (the checker, the
//! bounds and the host all use it), so the crate's modules have no import
//! cycle.

use std::fmt;

/// Why a call into a caplet failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The caplet used up its CPU budget (fuel) and was stopped. The
    /// instance is dead.
    #[error("caplet exceeded its CPU budget")]
    OutOfFuel,
    /// The caplet tried to grow its memory (or a table) past its cap and
    /// then stopped because of it: it ran out of memory in its allocator
    /// (which aborts with `unreachable`). The instance is dead. A refused
    /// growth followed by some other trap is reported as that trap (the
    /// caplet saw the refusal, `-1`, and went on).
    #[error("caplet exceeded its memory limit")]
    MemoryLimit,
    /// The call ran past its wall-clock limit
    /// ([`crate::Config::wall_time_per_call`]), for example because the
    /// embedder's [`crate::Outside`] blocked. The instance is dead.
    #[error("caplet exceeded its time limit")]
    TimedOut,
    /// The caplet exhausted its stack. The instance is dead.
    #[error("caplet overflowed its stack")]
    StackOverflow,
    /// The caplet trapped. The instance is dead.
    #[error("caplet trapped ({0})")]
    Trap(TrapKind),
    /// The entry point returned this non-zero code.
    #[error("caplet returned failure code {0}")]
    CapletFailed(i32),
    /// An earlier call killed this instance; make a fresh one.
    #[error("caplet instance is dead")]
    Dead,
    /// The message holds a record labelled `pola:ref`, which only the
    /// sandbox may write (it stands for a reference).
    #[error("message contains the reserved record label `pola:ref`")]
    ReservedLabel,
    /// The encoded message is over the configured limit.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    MessageTooLarge {
        /// Encoded size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The caplet's c-list has no room for the message's references.
    #[error("caplet c-list is full")]
    CListFull,
    /// `notify` was called but the caplet has no `pola_notify` entry point.
    #[error("caplet has no pola_notify entry point")]
    NoNotify,
    /// Every instance slot of the pool is in use.
    #[error("too many live caplet instances")]
    Busy,
    /// The engine failed in a way that is not the caplet's fault.
    #[error("sandbox engine failure")]
    Engine,
}

impl CallError {
    /// Whether this error killed the instance (so a fresh one is needed).
    pub fn kills_instance(&self) -> bool {
        matches!(
            self,
            CallError::OutOfFuel
                | CallError::TimedOut
                | CallError::MemoryLimit
                | CallError::StackOverflow
                | CallError::Trap(_)
                | CallError::Dead
        )
    }

    /// A short fixed reason, safe to show to other parties (used when the
    /// host breaks a promise because its caplet failed).
    pub fn public_reason(&self) -> &'static str {
        match self {
            CallError::OutOfFuel => "caplet exceeded its CPU budget",
            CallError::TimedOut => "caplet exceeded its time limit",
            CallError::MemoryLimit => "caplet exceeded its memory limit",
            CallError::StackOverflow => "caplet overflowed its stack",
            CallError::Trap(_) => "caplet trapped",
            CallError::CapletFailed(_) => "caplet failed",
            CallError::Dead => "caplet instance is gone",
            CallError::ReservedLabel => "message refused",
            CallError::MessageTooLarge { .. } => "message too large",
            CallError::CListFull => "caplet holds too many references",
            CallError::NoNotify => "caplet cannot be notified",
            CallError::Busy => "too many caplet instances",
            CallError::Engine => "sandbox failure",
        }
    }
}

/// What kind of trap stopped a caplet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum TrapKind {
    /// `unreachable` (a Rust panic or abort lands here).
    #[error("unreachable")]
    Unreachable,
    /// A load or store outside linear memory.
    #[error("memory access out of bounds")]
    MemoryOutOfBounds,
    /// Division by zero, overflow, bad float conversion.
    #[error("arithmetic fault")]
    Arithmetic,
    /// A bad indirect call.
    #[error("bad indirect call")]
    IndirectCall,
    /// Anything else.
    #[error("other")]
    Other,
}

/// Why a module was not loaded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// Larger than the configured maximum; not compiled.
    #[error("module of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Size.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// Not a valid WebAssembly core module (components are refused too).
    #[error("not a valid caplet module: {0}")]
    Invalid(String),
    /// Valid, but it asks for something other than the caplet interface.
    #[error("caplet is not confined: {0}")]
    NotConfined(Problem),
    /// Valid and confined, but over one of the host's bounds on a module's
    /// shape ([`crate::Bounds`]): compiling it could take the host too
    /// long or too much memory, or it would not fit an instance slot. Not
    /// compiled.
    #[error("caplet module refused before compiling: {0}")]
    Exceeded(Exceeded),
    /// The checking engine could not be created.
    #[error("sandbox engine failure")]
    Engine,
}

/// The sandbox engine could not be created.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot set up the caplet sandbox: {0}")]
pub struct SetupError(pub(crate) String);

/// Why a module is not acceptable, as [`crate::check`] lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// An import from outside the caplet interface (WASI, env, clock, …).
    ForbiddenImport {
        /// Import module.
        module: String,
        /// Field name.
        name: String,
    },
    /// A `pola` import with the wrong type.
    WrongImportType {
        /// Field name.
        name: String,
    },
    /// A required export is missing.
    MissingExport {
        /// Its name.
        name: &'static str,
    },
    /// An entry point or memory export with the wrong type.
    WrongExportType {
        /// Its name.
        name: String,
    },
    /// Confined, but over one of the host's bounds (see
    /// [`LoadError::Exceeded`]).
    Exceeded(Exceeded),
}

impl Problem {
    /// Whether this problem is about authority (an import or export), as
    /// opposed to size ([`Problem::Exceeded`]).
    pub fn is_confinement(&self) -> bool {
        !matches!(self, Problem::Exceeded(_))
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::ForbiddenImport { module, name } => write!(
                f,
                "forbidden import `{module}::{name}` (a caplet may import only `pola` functions)"
            ),
            Problem::WrongImportType { name } => {
                write!(f, "import `pola::{name}` has the wrong type")
            }
            Problem::MissingExport { name } => write!(f, "missing export `{name}`"),
            Problem::WrongExportType { name } => write!(f, "export `{name}` has the wrong type"),
            Problem::Exceeded(e) => e.fmt(f),
        }
    }
}

/// Which of the host's bounds on a module's shape ([`crate::Bounds`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// Blocks, loops and `if`s nested inside one another in one function.
    Nesting,
    /// Instructions in one function body.
    FunctionOperators,
    /// Local variables of one function (parameters included).
    FunctionLocals,
    /// Functions, imported and defined.
    Functions,
    /// Bytes of all function bodies together.
    CodeBytes,
    /// Instructions in all function bodies together.
    Operators,
    /// Global variables.
    Globals,
    /// Data and element segments.
    Segments,
    /// Linear memories defined by the module.
    Memories,
    /// Tables defined by the module.
    Tables,
    /// The initial size of a memory, in bytes.
    MemoryBytes,
    /// The initial size of a table, in elements.
    TableElements,
}

impl Limit {
    /// What is counted, in plain words.
    fn what(self) -> &'static str {
        match self {
            Limit::Nesting => "blocks nested",
            Limit::FunctionOperators => "instructions",
            Limit::FunctionLocals => "local variables",
            Limit::Functions => "functions",
            Limit::CodeBytes => "bytes of code",
            Limit::Operators => "instructions in all",
            Limit::Globals => "globals",
            Limit::Segments => "data and element segments",
            Limit::Memories => "memories",
            Limit::Tables => "tables",
            Limit::MemoryBytes => "bytes of initial memory",
            Limit::TableElements => "initial table elements",
        }
    }
}

/// A module over one of the host's bounds: which, by how much, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Exceeded {
    /// The bound.
    pub limit: Limit,
    /// What the module has (for a per-function bound, the first function
    /// over it; see [`Exceeded::function`]).
    pub found: u64,
    /// The host's bound.
    pub max: u64,
    /// For a per-function bound, the index of that function (in the
    /// module's function index space, imports first).
    pub function: Option<u32>,
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.function {
            Some(i) => write!(f, "function {i}")?,
            None => f.write_str("the module")?,
        }
        match self.limit {
            Limit::Nesting => write!(f, " nests blocks {} deep", self.found)?,
            other => write!(f, " has {} {}", self.found, other.what())?,
        }
        write!(f, "; the host's limit is {}", self.max)
    }
}
