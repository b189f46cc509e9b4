//! Bounds on a module's shape, checked before it is compiled.
//!
//! Compiling is attack surface: a valid module of a few hundred kilobytes
//! can make the compiler work for minutes and take gigabytes (deeply nested
//! `if`s cost time with the square of their depth; every nested `loop`
//! costs the compiler kilobytes; a million functions cost gigabytes). The
//! loader therefore reads every function body once, in linear time and
//! constant memory per function, and refuses a module over any of
//! [`Bounds`] before the compiler sees it. The defaults are chosen from
//! measurements (`cargo bench -p pola-sandbox --bench compile`) so that
//! the costliest module within them compiles in about four seconds (488
//! functions of 511 nested loops) and takes at most 0.4 GB (17 functions
//! of 4 000 `if` diamonds) on a two-core machine, while real caplets (0.15
//! s, 21 MB) stay far inside.
//!
//! The bounds also cover what the instance pool cannot hold (a second
//! memory or table, a memory or table larger than a slot, more globals and
//! functions than an instance's fixed-size context), which wasmtime itself
//! would refuse only after compiling.
//!
//! Invariant (upheld by [`crate::check`]'s one decision function, used by
//! both [`crate::check`] and [`crate::Sandbox::load`]): a module the
//! checker passes is one the loader compiles, and the reverse.

use wasmparser::{FunctionBody, Operator};

/// The host's bounds on a module's shape (see the module docs). Part of
/// [`crate::Config`]; start from `Bounds::default()` and change fields.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Bounds {
    /// Deepest nesting of blocks, loops, `if`s and `try`s in one function
    /// (the function's own body counts as one). Compile time grows with
    /// the square of this depth. Default 512.
    pub max_nesting: u32,
    /// Most instructions in one function body (a `br_table` counts one
    /// more per target). The compiler's time and memory per function grow
    /// faster than its size (`if` diamonds: 4 000 of them, 28 000
    /// instructions, take about 100 MB to compile). Default 30 000.
    pub max_function_operators: u32,
    /// Most local variables of one function, parameters included.
    /// Default 5 000.
    pub max_function_locals: u32,
    /// Most functions, imported and defined. Each costs compiler memory
    /// and a slot in the instance's context. Default 20 000.
    pub max_functions: u32,
    /// Most bytes of code (all function bodies together). Default 8 MiB.
    pub max_code_bytes: u64,
    /// Most instructions in all function bodies together. Default 500 000.
    pub max_operators: u64,
    /// Most globals (each takes room in the instance's context).
    /// Default 5 000.
    pub max_globals: u32,
    /// Most data and element segments together. Default 10 000.
    pub max_segments: u32,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_nesting: 512,
            max_function_operators: 30_000,
            max_function_locals: 5_000,
            max_functions: 20_000,
            max_code_bytes: 8 << 20,
            max_operators: 500_000,
            max_globals: 5_000,
            max_segments: 10_000,
        }
    }
}

impl Bounds {
    /// Bounds so high that no module the parser accepts reaches them: for
    /// measuring what compiling costs without them (benchmarks). Never
    /// load untrusted modules with these.
    pub fn unbounded() -> Self {
        Bounds {
            max_nesting: u32::MAX,
            max_function_operators: u32::MAX,
            max_function_locals: u32::MAX,
            max_functions: u32::MAX,
            max_code_bytes: u64::MAX,
            max_operators: u64::MAX,
            max_globals: u32::MAX,
            max_segments: u32::MAX,
        }
    }
}

/// What one function body asks of the compiler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BodyStats {
    /// Deepest control nesting (the body itself is depth 1).
    pub(crate) nesting: u64,
    /// Instructions, the final `end` included; a `br_table` counts one
    /// more for each of its targets.
    pub(crate) operators: u64,
    /// Declared locals (parameters not included).
    pub(crate) locals: u64,
}

/// Reads one function body in linear time.
///
/// # Errors
/// The parser's error for a malformed body.
pub(crate) fn body_stats(body: &FunctionBody<'_>) -> wasmparser::Result<BodyStats> {
    let mut stats = BodyStats::default();
    let mut locals = body.get_locals_reader()?;
    for _ in 0..locals.get_count() {
        let (count, _) = locals.read()?;
        stats.locals = stats.locals.saturating_add(u64::from(count));
    }
    let mut ops = body.get_operators_reader()?;
    let mut depth: u64 = 1;
    stats.nesting = 1;
    while !ops.eof() {
        let op = ops.read()?;
        stats.operators = stats.operators.saturating_add(1);
        match op {
            Operator::Block { .. }
            | Operator::Loop { .. }
            | Operator::If { .. }
            | Operator::Try { .. }
            | Operator::TryTable { .. } => {
                depth = depth.saturating_add(1);
                stats.nesting = stats.nesting.max(depth);
            }
            Operator::End | Operator::Delegate { .. } => depth = depth.saturating_sub(1),
            // Every target is a branch for the compiler to lay out.
            Operator::BrTable { targets } => {
                stats.operators = stats.operators.saturating_add(u64::from(targets.len()));
            }
            _ => {}
        }
    }
    Ok(stats)
}
