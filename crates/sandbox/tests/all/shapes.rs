//! Valid, confined modules of the shapes that make compiling costly
//! (issue #10): deep nesting, `if` diamonds, huge bodies, many functions,
//! many locals, wide `br_table`s. Each is a caplet that imports nothing and
//! exports `memory` and `pola_deliver`, so nothing but its shape can make
//! the loader refuse it. Shared by the tests and the compile bench.
#![allow(dead_code)]

use wasm_encoder::{
    BlockType, CodeSection, ExportKind, ExportSection, Function, FunctionSection, MemorySection,
    MemoryType, Module, TypeSection, ValType,
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
}

impl Shape {
    /// Every shape.
    pub const ALL: [Shape; 9] = [
        Shape::NestedIf,
        Shape::NestedLoop,
        Shape::NestedBlock,
        Shape::Diamonds,
        Shape::Straight,
        Shape::Functions,
        Shape::Locals,
        Shape::BrTable,
        Shape::DiamondFunctions,
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
        }
    }

    /// The shape named `name`.
    pub fn from_name(name: &str) -> Option<Shape> {
        Shape::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The entry point's body for `shape` at `n` (functions aside).
fn entry(shape: Shape, n: u32) -> Function {
    // Param 0 is the message length (i32), param 1 the resolver (i64).
    let locals: Vec<(u32, ValType)> = match shape {
        Shape::Diamonds | Shape::Straight | Shape::DiamondFunctions => vec![(1, ValType::I32)],
        Shape::Locals => vec![(n, ValType::I32)],
        _ => vec![],
    };
    let mut f = Function::new(locals);
    let mut s = f.instructions();
    match shape {
        Shape::NestedIf => {
            for _ in 0..n {
                s.local_get(0).if_(BlockType::Empty);
            }
            for _ in 0..n {
                s.end();
            }
        }
        Shape::NestedLoop => {
            for _ in 0..n {
                s.loop_(BlockType::Empty);
            }
            for _ in 0..n {
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
        Shape::DiamondFunctions => (n.saturating_sub(1), 0),
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
    if shape == Shape::DiamondFunctions {
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
