//! Confinement checks: what a module imports and exports, and whether it
//! asks for anything but the caplet interface.
//!
//! The loader ([`crate::Sandbox::load`]) refuses a module with any
//! [`Problem`], before compiling it; [`check`] reports them all without
//! compiling, for tools such as a `pola caplet check FILE.wasm` command.
//! Both read the module's sections with `wasmparser` (the parser wasmtime
//! itself uses); `check` validates with wasmtime's own rules first.

use std::fmt;

use wasmparser::{ExternalKind, Payload, TypeRef, ValType};

use crate::abi::{self, Num};
use crate::error::LoadError;
use crate::host::validate_for_check;

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

/// Why a module is not confined.
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
        }
    }
}

/// What [`check`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Every import, in order.
    pub imports: Vec<Item>,
    /// Every export, in order.
    pub exports: Vec<Item>,
    /// Every reason the module is not confined (empty if it is).
    pub problems: Vec<Problem>,
    /// Whether the loader would accept it: imports only the caplet
    /// interface and exports its entry points.
    pub confined: bool,
}

/// Inspects a module without running it (nor compiling it: the module is
/// validated and its import and export sections are read).
///
/// # Errors
/// [`LoadError::Invalid`] if the bytes are not a valid core module.
pub fn check(bytes: &[u8]) -> Result<Report, LoadError> {
    validate_for_check(bytes)?;
    let surface = Surface::read(bytes)?;
    let problems = confinement_problems(&surface);
    let item = |(module, name, shape): &(String, String, Shape)| Item {
        module: module.clone(),
        name: name.clone(),
        ty: shape.to_string(),
    };
    Ok(Report {
        imports: surface.imports.iter().map(item).collect(),
        exports: surface.exports.iter().map(item).collect(),
        confined: problems.is_empty(),
        problems,
    })
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
    /// Reads the import and export sections (and the types they need).
    ///
    /// # Errors
    /// [`LoadError::Invalid`] for malformed sections or a component.
    pub(crate) fn read(bytes: &[u8]) -> Result<Surface, LoadError> {
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
                        memories.push(Shape::Memory {
                            memory64: m.memory64,
                            shared: m.shared,
                        });
                    }
                }
                Payload::ExportSection(r) => {
                    for e in r {
                        let e = e.map_err(|e| invalid(&e))?;
                        raw_exports.push((e.name.to_owned(), e.kind, e.index));
                    }
                }
                // Everything the interface depends on comes before the code.
                Payload::CodeSectionStart { .. } | Payload::DataSection(_) => break,
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
        Ok(Surface { imports, exports })
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
