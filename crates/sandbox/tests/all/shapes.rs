//! Valid, confined modules of the shapes that make compiling costly
//! (issue #10): deep nesting, `if` diamonds, huge bodies, many functions,
//! many locals, wide `br_table`s. Each is a caplet that imports nothing and
//! exports `memory` and `pola_deliver`, so nothing but its shape can make
//! the loader refuse it. Shared by the tests and the compile bench.
#![allow(dead_code)]

use pola_sandbox::Bounds;
use wasm_encoder::{
    BlockType, CodeSection, ExportKind, ExportSection, Function, FunctionSection, InstructionSink,
    MemorySection, MemoryType, Module, TypeSection, ValType,
};

/// A costly shape, scaled by `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `n` `if`s nested in one another (nesting depth `n + 1`).
    NestedIf,
    /// `n` `loop`s nested in one another.
    NestedLoop,
    /// `n` `block`s nested in one another.
    NestedBlock,
    /// `n` `if … else … end` diamonds in a row, in one function (7
    /// instructions each).
    Diamonds,
    /// `n` straight-line additions in one function (2 instructions each).
    Straight,
    /// `n` functions besides the entry point (1 instruction each).
    Functions,
    /// One function with `n` locals, all live at once (about 4
    /// instructions per local).
    Locals,
    /// One `br_table` with `n` targets.
    BrTable,
    /// `n` functions of 4 000 diamonds each (28 000 instructions): the
    /// costliest per-function shape, repeated up to the module's bounds.
    DiamondFunctions,
    /// `n` functions of [`DEEP`] nested `if`s each (1 535 instructions):
    /// the deepest nesting the default bounds allow, as often as their
    /// total allows.
    DeepIfFunctions,
    /// `n` functions of [`DEEP`] nested `loop`s each (1 024 instructions).
    DeepLoopFunctions,
    /// `n` diamonds inside [`DEEP`]` - 1` nested `if`s, in one function:
    /// both costly shapes at once.
    DeepDiamonds,
}

/// The deepest nesting of blocks the default bounds let a function have
/// (the body itself is one more level; `Bounds::default().max_nesting`).
pub const DEEP: u32 = 511;

impl Shape {
    /// Every shape.
    pub const ALL: [Shape; 12] = [
        Shape::NestedIf,
        Shape::NestedLoop,
        Shape::NestedBlock,
        Shape::Diamonds,
        Shape::Straight,
        Shape::Functions,
        Shape::Locals,
        Shape::BrTable,
        Shape::DiamondFunctions,
        Shape::DeepIfFunctions,
        Shape::DeepLoopFunctions,
        Shape::DeepDiamonds,
    ];

    /// Its name, for tables and command lines.
    pub fn name(self) -> &'static str {
        match self {
            Shape::NestedIf => "nested-if",
            Shape::NestedLoop => "nested-loop",
            Shape::NestedBlock => "nested-block",
            Shape::Diamonds => "diamonds",
            Shape::Straight => "straight",
            Shape::Functions => "functions",
            Shape::Locals => "locals",
            Shape::BrTable => "br-table",
            Shape::DiamondFunctions => "diamond-functions",
            Shape::DeepIfFunctions => "deep-if-functions",
            Shape::DeepLoopFunctions => "deep-loop-functions",
            Shape::DeepDiamonds => "deep-diamonds",
        }
    }

    /// The shape named `name`.
    pub fn from_name(name: &str) -> Option<Shape> {
        Shape::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The worst module of each shape that `bounds` let through: the largest
/// `n` within them (each at one bound, or at the total of instructions).
pub fn at_bounds(b: &Bounds) -> Vec<(Shape, u32)> {
    // How many pieces of `each` instructions fit in `total`.
    let fit = |total: u64, each: u64| u32::try_from(total / each).unwrap_or(u32::MAX);
    let deepest = b.max_nesting - 1;
    vec![
        // Depth n + 1 (the body counts).
        (Shape::NestedIf, deepest),
        (Shape::NestedLoop, deepest),
        (Shape::NestedBlock, deepest),
        // 7 per diamond + the final `i32.const 0; end`.
        (Shape::Diamonds, (b.max_function_operators - 2) / 7),
        // `local.get`, 2 per add, `local.set`, `i32.const`, `end`.
        (Shape::Straight, (b.max_function_operators - 4) / 2),
        // The entry point and n more.
        (Shape::Functions, b.max_functions - 1),
        // Two parameters and n locals.
        (Shape::Locals, b.max_function_locals - 2),
        // `block`, `local.get`, the `br_table` and its targets, `end`,
        // `i32.const`, `end`.
        (Shape::BrTable, b.max_function_operators - 6),
        // As many functions of 28 003 instructions as the total allows.
        (Shape::DiamondFunctions, fit(b.max_operators, 28_003)),
        // As many functions at the deepest nesting as the total allows:
        // `local.get` and `if` per level, the `end`s, `i32.const`, `end`.
        (
            Shape::DeepIfFunctions,
            fit(b.max_operators, 3 * u64::from(DEEP) + 2),
        ),
        (
            Shape::DeepLoopFunctions,
            fit(b.max_operators, 2 * u64::from(DEEP) + 2),
        ),
        // Diamonds filling a function inside the deepest nesting.
        (
            Shape::DeepDiamonds,
            (b.max_function_operators - 3 * (DEEP - 1) - 2) / 7,
        ),
    ]
}

/// `n` `if … else … end` diamonds (7 instructions each) on local 2.
fn diamonds(s: &mut InstructionSink<'_>, n: u32) {
    for _ in 0..n {
        s.local_get(0)
            .if_(BlockType::Result(ValType::I32))
            .i32_const(1)
            .else_()
            .local_get(2)
            .end()
            .local_set(2);
    }
}

/// The entry point's body for `shape` at `n` (functions aside).
fn entry(shape: Shape, n: u32) -> Function {
    // Param 0 is the message length (i32), param 1 the resolver (i64).
    let locals: Vec<(u32, ValType)> = match shape {
        Shape::Diamonds | Shape::Straight | Shape::DiamondFunctions | Shape::DeepDiamonds => {
            vec![(1, ValType::I32)]
        }
        Shape::Locals => vec![(n, ValType::I32)],
        _ => vec![],
    };
    let mut f = Function::new(locals);
    let mut s = f.instructions();
    match shape {
        Shape::NestedIf | Shape::DeepIfFunctions => {
            let n = if shape == Shape::NestedIf { n } else { DEEP };
            for _ in 0..n {
                s.local_get(0).if_(BlockType::Empty);
            }
            for _ in 0..n {
                s.end();
            }
        }
        Shape::NestedLoop | Shape::DeepLoopFunctions => {
            let n = if shape == Shape::NestedLoop { n } else { DEEP };
            for _ in 0..n {
                s.loop_(BlockType::Empty);
            }
            for _ in 0..n {
                s.end();
            }
        }
        Shape::DeepDiamonds => {
            // The diamond's own `if` is the deepest level.
            for _ in 0..DEEP - 1 {
                s.local_get(0).if_(BlockType::Empty);
            }
            diamonds(&mut s, n);
            for _ in 0..DEEP - 1 {
                s.end();
            }
        }
        Shape::NestedBlock => {
            for _ in 0..n {
                s.block(BlockType::Empty);
            }
            for _ in 0..n {
                s.end();
            }
        }
        Shape::Diamonds | Shape::DiamondFunctions => {
            let n = if shape == Shape::Diamonds { n } else { 4_000 };
            diamonds(&mut s, n);
        }
        Shape::Straight => {
            s.local_get(0);
            for i in 0..n {
                s.i32_const(i as i32).i32_add();
            }
            s.local_set(2);
        }
        Shape::Locals => {
            for i in 0..n {
                s.local_get(0)
                    .i32_const(i as i32)
                    .i32_add()
                    .local_set(2 + i);
            }
            s.i32_const(0);
            for i in 0..n {
                s.local_get(2 + i).i32_add();
            }
            s.local_set(0);
        }
        Shape::BrTable => {
            s.block(BlockType::Empty).local_get(0);
            let targets = vec![0u32; n as usize];
            s.br_table(targets, 0);
            s.end();
        }
        Shape::Functions => {}
    }
    s.i32_const(0).end();
    f
}

/// A confined caplet module of `shape`, scaled by `n`.
pub fn module(shape: Shape, n: u32) -> Vec<u8> {
    let mut types = TypeSection::new();
    types
        .ty()
        .function([ValType::I32, ValType::I64], [ValType::I32]);
    types.ty().function([], []);
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    let (extra, ty) = match shape {
        Shape::Functions => (n, 1),
        // The same body as the entry point.
        Shape::DiamondFunctions | Shape::DeepIfFunctions | Shape::DeepLoopFunctions => {
            (n.saturating_sub(1), 0)
        }
        _ => (0, 0),
    };
    for _ in 0..extra {
        funcs.function(ty);
    }
    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: 1,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0);
    exports.export("pola_deliver", ExportKind::Func, 0);
    let mut code = CodeSection::new();
    code.function(&entry(shape, n));
    let mut other = Function::new([]);
    other.instructions().end();
    if matches!(
        shape,
        Shape::DiamondFunctions | Shape::DeepIfFunctions | Shape::DeepLoopFunctions
    ) {
        other = entry(shape, n);
    }
    for _ in 0..extra {
        code.function(&other);
    }
    let mut m = Module::new();
    m.section(&types)
        .section(&funcs)
        .section(&memories)
        .section(&exports)
        .section(&code);
    m.finish()
}
