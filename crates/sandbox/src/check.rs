//! The one checker: what a module imports and exports, whether it asks for
//! anything but the caplet interface, and whether it is within the host's
//! [`Bounds`].
//!
//! One function, `examine`, decides; the loader ([`crate::Sandbox::load`])
//! and [`check`] (for tools such as `pola caplet check FILE.wasm`) both call
//! it, so they agree: the loader refuses a module with any [`Problem`],
//! before compiling it, and `check` reports them all without compiling. It
//! reads the module's sections with `wasmparser` (the parser wasmtime
//! itself uses), every function body once, in linear time. A module with
//! no problem is then validated with the engine's own rules (by `check`
//! explicitly, by the loader as it compiles).

use std::fmt;

use wasmparser::{ExternalKind, Payload, TypeRef, ValType};

use crate::abi::{self, Num};
use crate::bounds::{Bounds, body_stats};
use crate::config::Config;
use crate::engine::validate;
use crate::error::{Exceeded, Limit, LoadError, Problem};

/// One import or export of a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// Import module (`""` for exports).
    pub module: String,
    /// Field name.
    pub name: String,
    /// Its type, e.g. `func (i64, i32, i32) -> (i64)` or `memory`.
    pub ty: String,
}

/// What [`check`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Every import, in order.
    pub imports: Vec<Item>,
    /// Every export, in order.
    pub exports: Vec<Item>,
    /// Every reason the loader would refuse the module: confinement
    /// problems first (imports, exports), then the host's bounds (at most
    /// one per [`Limit`]). Empty if it would load.
    pub problems: Vec<Problem>,
    /// Whether the module is confined: it imports only the caplet
    /// interface and exports its entry points (no confinement problem).
    pub confined: bool,
    /// Whether the loader would accept it under the bounds checked
    /// against: confined, within every bound, and valid for the engine
    /// (`problems` is empty).
    pub loads: bool,
    /// The module's size by each bound's measure, to compare with
    /// [`Bounds`].
    pub measures: Measures,
}

/// A module's size by the measures of [`Bounds`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Measures {
    /// Deepest block nesting in any function.
    pub nesting: u64,
    /// Most instructions in one function.
    pub function_operators: u64,
    /// Most locals (parameters included) in one function.
    pub function_locals: u64,
    /// Functions, imported and defined.
    pub functions: u64,
    /// Bytes of code.
    pub code_bytes: u64,
    /// Instructions in all functions.
    pub operators: u64,
    /// Globals.
    pub globals: u64,
    /// Data and element segments.
    pub segments: u64,
}

/// Inspects a module without running or compiling it, under the default
/// [`Config`]'s bounds: [`check_with`] `Config::default()`. Exactly what
/// [`crate::Sandbox::load`] decides for a sandbox with the default
/// configuration, compiling aside.
///
/// # Errors
/// As [`check_with`].
pub fn check(bytes: &[u8]) -> Result<Report, LoadError> {
    check_with(bytes, &Config::default())
}

/// Inspects a module without running or compiling it, under `config`'s
/// bounds (its module size, memory and table sizes and [`Bounds`]):
/// whether a [`crate::Sandbox`] built with `config` would load it, and
/// every reason it would not. A module whose report says it loads is one
/// the loader compiles.
///
/// # Errors
/// - [`LoadError::TooLarge`] for a module over `config.max_module_bytes`
///   (not read);
/// - [`LoadError::Invalid`] if the bytes are not a valid core module;
/// - [`LoadError::Engine`] if the checking engine cannot be created.
pub fn check_with(bytes: &[u8], config: &Config) -> Result<Report, LoadError> {
    let examined = examine(bytes, config)?;
    if examined.problems.is_empty() {
        validate(bytes)?;
    }
    let surface = &examined.surface;
    let item = |(module, name, shape): &(String, String, Shape)| Item {
        module: module.clone(),
        name: name.clone(),
        ty: shape.to_string(),
    };
    let problems = examined.problems;
    let f = &examined.facts;
    let measures = Measures {
        nesting: f.nesting.largest,
        function_operators: f.function_operators.largest,
        function_locals: f.function_locals.largest,
        functions: f.functions,
        code_bytes: f.code_bytes,
        operators: f.operators,
        globals: f.globals,
        segments: f.segments,
    };
    Ok(Report {
        measures,
        imports: surface.imports.iter().map(item).collect(),
        exports: surface.exports.iter().map(item).collect(),
        confined: problems.iter().all(|p| !p.is_confinement()),
        loads: problems.is_empty(),
        problems,
    })
}

/// What [`examine`] found: the module's surface and every problem.
pub(crate) struct Examined {
    /// Imports and exports.
    pub(crate) surface: Surface,
    /// Confinement problems first, then bounds exceeded.
    pub(crate) problems: Vec<Problem>,
    /// The module's shape.
    facts: ModuleShape,
}

/// The one decision: reads the whole module once, in linear time, and
/// lists every reason a sandbox with `config` refuses it. Both [`check`]
/// and the loader call this; neither compiles a module with a problem.
///
/// # Errors
/// [`LoadError::TooLarge`] over the size limit (nothing read);
/// [`LoadError::Invalid`] for malformed sections or bodies, or a component.
pub(crate) fn examine(bytes: &[u8], config: &Config) -> Result<Examined, LoadError> {
    if bytes.len() > config.max_module_bytes {
        return Err(LoadError::TooLarge {
            len: bytes.len(),
            max: config.max_module_bytes,
        });
    }
    let (surface, facts) = Surface::read(bytes, &config.bounds)?;
    let mut problems = confinement_problems(&surface);
    problems.extend(
        facts
            .exceeded(&config.bounds, config)
            .into_iter()
            .map(Problem::Exceeded),
    );
    Ok(Examined {
        surface,
        problems,
        facts,
    })
}

/// The largest value of a per-function measure, and the first function
/// over its bound, if any.
#[derive(Default)]
struct Worst {
    /// The largest value seen.
    largest: u64,
    /// `(function index, found)` of the first function over the bound.
    first_over: Option<(u32, u64)>,
}

impl Worst {
    fn see(&mut self, function: u32, found: u64, max: u64) {
        self.largest = self.largest.max(found);
        if found > max && self.first_over.is_none() {
            self.first_over = Some((function, found));
        }
    }

    fn exceeded(&self, limit: Limit, max: u64) -> Option<Exceeded> {
        self.first_over.map(|(function, found)| Exceeded {
            limit,
            found,
            max,
            function: Some(function),
        })
    }
}

/// What a module asks of the compiler and the instance pool.
#[derive(Default)]
pub(crate) struct ModuleShape {
    functions: u64,
    code_bytes: u64,
    operators: u64,
    globals: u64,
    segments: u64,
    memories: u64,
    tables: u64,
    /// Largest initial memory, in bytes.
    memory_bytes: u64,
    /// Largest initial table, in elements.
    table_elements: u64,
    nesting: Worst,
    function_operators: Worst,
    function_locals: Worst,
}

impl ModuleShape {
    /// Every bound this shape exceeds, in the order of [`Limit`].
    fn exceeded(&self, b: &Bounds, config: &Config) -> Vec<Exceeded> {
        let whole = |limit, found: u64, max: u64| {
            (found > max).then_some(Exceeded {
                limit,
                found,
                max,
                function: None,
            })
        };
        let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        [
            self.nesting
                .exceeded(Limit::Nesting, u64::from(b.max_nesting)),
            self.function_operators.exceeded(
                Limit::FunctionOperators,
                u64::from(b.max_function_operators),
            ),
            self.function_locals
                .exceeded(Limit::FunctionLocals, u64::from(b.max_function_locals)),
            whole(Limit::Functions, self.functions, u64::from(b.max_functions)),
            whole(Limit::CodeBytes, self.code_bytes, b.max_code_bytes),
            whole(Limit::Operators, self.operators, b.max_operators),
            whole(Limit::Globals, self.globals, u64::from(b.max_globals)),
            whole(Limit::Segments, self.segments, u64::from(b.max_segments)),
            // The instance pool has one memory and one table per slot.
            whole(Limit::Memories, self.memories, 1),
            whole(Limit::Tables, self.tables, 1),
            whole(
                Limit::MemoryBytes,
                self.memory_bytes,
                wide(config.memory_bytes),
            ),
            whole(
                Limit::TableElements,
                self.table_elements,
                wide(config.table_elements),
            ),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// The type of an import or export, as far as confinement cares.
#[derive(Clone, Debug)]
pub(crate) enum Shape {
    Func {
        params: Vec<ValType>,
        results: Vec<ValType>,
    },
    Memory {
        memory64: bool,
        shared: bool,
    },
    /// A table, global or tag (or a function of a type we cannot see).
    Other(&'static str),
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Func { params, results } => {
                let list = |v: &[ValType]| {
                    v.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                write!(f, "func ({}) -> ({})", list(params), list(results))
            }
            Shape::Memory { .. } => f.write_str("memory"),
            Shape::Other(kind) => f.write_str(kind),
        }
    }
}

/// A module's imports and exports, read from its sections without
/// compiling it (so the loader can refuse a module before spending
/// compile time on it).
pub(crate) struct Surface {
    /// `(module, name, shape)` of every import, in order.
    imports: Vec<(String, String, Shape)>,
    /// `("", name, shape)` of every export, in order.
    exports: Vec<(String, String, Shape)>,
}

fn invalid(e: &wasmparser::BinaryReaderError) -> LoadError {
    LoadError::Invalid(e.message().to_owned())
}

impl Surface {
    /// Reads the whole module: the import and export sections (and the
    /// types they need), and the shape of everything else.
    ///
    /// # Errors
    /// [`LoadError::Invalid`] for malformed sections or a component.
    fn read(bytes: &[u8], bounds: &Bounds) -> Result<(Surface, ModuleShape), LoadError> {
        let mut facts = ModuleShape::default();
        let mut imported_funcs: u32 = 0;
        let mut body_index: u32 = 0;
        let mut types: Vec<Option<wasmparser::FuncType>> = Vec::new();
        let mut funcs: Vec<u32> = Vec::new();
        let mut memories: Vec<Shape> = Vec::new();
        let mut imports = Vec::new();
        let mut exports = Vec::new();
        let mut raw_exports = Vec::new();
        let func_shape = |types: &[Option<wasmparser::FuncType>], t: u32| {
            usize::try_from(t)
                .ok()
                .and_then(|i| types.get(i))
                .and_then(Option::as_ref)
                .map_or(Shape::Other("func"), |f| Shape::Func {
                    params: f.params().to_vec(),
                    results: f.results().to_vec(),
                })
        };
        for payload in wasmparser::Parser::new(0).parse_all(bytes) {
            match payload.map_err(|e| invalid(&e))? {
                Payload::Version { encoding, .. } if encoding != wasmparser::Encoding::Module => {
                    return Err(LoadError::Invalid("not a core module".to_owned()));
                }
                Payload::TypeSection(r) => {
                    for group in r {
                        for sub in group.map_err(|e| invalid(&e))?.into_types() {
                            types.push(match sub.composite_type.inner {
                                wasmparser::CompositeInnerType::Func(f) => Some(f),
                                _ => None,
                            });
                        }
                    }
                }
                Payload::ImportSection(r) => {
                    for import in r.into_imports() {
                        let import = import.map_err(|e| invalid(&e))?;
                        let shape = match import.ty {
                            TypeRef::Func(t) | TypeRef::FuncExact(t) => {
                                funcs.push(t);
                                imported_funcs = imported_funcs.saturating_add(1);
                                func_shape(&types, t)
                            }
                            TypeRef::Memory(m) => {
                                let shape = Shape::Memory {
                                    memory64: m.memory64,
                                    shared: m.shared,
                                };
                                memories.push(shape.clone());
                                shape
                            }
                            TypeRef::Table(_) => Shape::Other("table"),
                            TypeRef::Global(_) => Shape::Other("global"),
                            TypeRef::Tag(_) => Shape::Other("tag"),
                        };
                        imports.push((import.module.to_owned(), import.name.to_owned(), shape));
                    }
                }
                Payload::FunctionSection(r) => {
                    for t in r {
                        funcs.push(t.map_err(|e| invalid(&e))?);
                    }
                }
                Payload::MemorySection(r) => {
                    for m in r {
                        let m = m.map_err(|e| invalid(&e))?;
                        facts.memories += 1;
                        let page = 1u64
                            .checked_shl(m.page_size_log2.unwrap_or(16))
                            .unwrap_or(u64::MAX);
                        facts.memory_bytes = facts.memory_bytes.max(m.initial.saturating_mul(page));
                        memories.push(Shape::Memory {
                            memory64: m.memory64,
                            shared: m.shared,
                        });
                    }
                }
                Payload::TableSection(r) => {
                    for t in r {
                        let t = t.map_err(|e| invalid(&e))?;
                        facts.tables += 1;
                        facts.table_elements = facts.table_elements.max(t.ty.initial);
                    }
                }
                Payload::GlobalSection(r) => facts.globals += u64::from(r.count()),
                Payload::DataSection(r) => facts.segments += u64::from(r.count()),
                Payload::ElementSection(r) => facts.segments += u64::from(r.count()),
                Payload::CodeSectionStart { size, .. } => {
                    facts.code_bytes = u64::from(size);
                }
                Payload::CodeSectionEntry(body) => {
                    let index = imported_funcs.saturating_add(body_index);
                    body_index = body_index.saturating_add(1);
                    let stats = body_stats(&body).map_err(|e| invalid(&e))?;
                    let params = usize::try_from(index)
                        .ok()
                        .and_then(|i| funcs.get(i))
                        .and_then(|t| usize::try_from(*t).ok())
                        .and_then(|t| types.get(t))
                        .and_then(Option::as_ref)
                        .map_or(0, |f| f.params().len());
                    let locals = stats
                        .locals
                        .saturating_add(u64::try_from(params).unwrap_or(u64::MAX));
                    let b = bounds;
                    facts
                        .nesting
                        .see(index, stats.nesting, b.max_nesting.into());
                    facts.function_operators.see(
                        index,
                        stats.operators,
                        b.max_function_operators.into(),
                    );
                    facts
                        .function_locals
                        .see(index, locals, b.max_function_locals.into());
                    facts.operators = facts.operators.saturating_add(stats.operators);
                }
                Payload::ExportSection(r) => {
                    for e in r {
                        let e = e.map_err(|e| invalid(&e))?;
                        raw_exports.push((e.name.to_owned(), e.kind, e.index));
                    }
                }
                _ => {}
            }
        }
        for (name, kind, index) in raw_exports {
            let i = usize::try_from(index).unwrap_or(usize::MAX);
            let shape = match kind {
                ExternalKind::Func | ExternalKind::FuncExact => funcs
                    .get(i)
                    .map_or(Shape::Other("func"), |t| func_shape(&types, *t)),
                ExternalKind::Memory => memories.get(i).cloned().unwrap_or(Shape::Other("memory")),
                ExternalKind::Table => Shape::Other("table"),
                ExternalKind::Global => Shape::Other("global"),
                ExternalKind::Tag => Shape::Other("tag"),
            };
            exports.push((String::new(), name, shape));
        }
        facts.functions = u64::try_from(funcs.len()).unwrap_or(u64::MAX);
        Ok((Surface { imports, exports }, facts))
    }

    fn export(&self, name: &str) -> Option<&Shape> {
        self.exports
            .iter()
            .find(|(_, n, _)| n == name)
            .map(|(_, _, s)| s)
    }
}

fn same(params: &[ValType], results: &[ValType], sig: (&[Num], &[Num])) -> bool {
    let (want_params, want_results) = sig;
    params.len() == want_params.len()
        && results.len() == want_results.len()
        && params.iter().zip(want_params).all(|(t, n)| n.matches(t))
        && results.iter().zip(want_results).all(|(t, n)| n.matches(t))
}

/// Every confinement problem of a module, imports first.
pub(crate) fn confinement_problems(module: &Surface) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (module_name, name, shape) in &module.imports {
        let allowed = if module_name == abi::MODULE {
            abi::allowed_import(name)
        } else {
            None
        };
        match (allowed, shape) {
            (Some(sig), Shape::Func { params, results }) => {
                if !same(params, results, sig) {
                    problems.push(Problem::WrongImportType { name: name.clone() });
                }
            }
            _ => problems.push(Problem::ForbiddenImport {
                module: module_name.clone(),
                name: name.clone(),
            }),
        }
    }
    match module.export(abi::EXPORT_MEMORY) {
        None => problems.push(Problem::MissingExport {
            name: abi::EXPORT_MEMORY,
        }),
        Some(Shape::Memory {
            memory64: false,
            shared: false,
        }) => {}
        Some(_) => problems.push(Problem::WrongExportType {
            name: abi::EXPORT_MEMORY.to_owned(),
        }),
    }
    for name in [abi::EXPORT_DELIVER, abi::EXPORT_NOTIFY] {
        let Some(sig) = abi::entry_point(name) else {
            continue;
        };
        match module.export(name) {
            None if name == abi::EXPORT_DELIVER => problems.push(Problem::MissingExport { name }),
            None => {}
            Some(Shape::Func { params, results }) if same(params, results, sig) => {}
            Some(_) => problems.push(Problem::WrongExportType {
                name: name.to_owned(),
            }),
        }
    }
    problems
}
