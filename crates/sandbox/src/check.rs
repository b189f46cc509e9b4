//! Confinement checks: what a module imports and exports, and whether it
//! asks for anything but the caplet interface.
//!
//! The loader ([`crate::Sandbox::load`]) refuses a module with any
//! [`Problem`]; [`check`] reports them all without loading, for tools such
//! as a `pola caplet check FILE.wasm` command.

use std::fmt;

use wasmtime::{ExternType, Module};

use crate::abi::{self, Num};
use crate::error::LoadError;
use crate::host::{compile_for_check, extern_type_string};

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

/// Inspects a module without running it.
///
/// # Errors
/// [`LoadError::Invalid`] if the bytes are not a valid core module.
pub fn check(bytes: &[u8]) -> Result<Report, LoadError> {
    let module = compile_for_check(bytes)?;
    let imports = module
        .imports()
        .map(|i| Item {
            module: i.module().to_owned(),
            name: i.name().to_owned(),
            ty: extern_type_string(&i.ty()),
        })
        .collect();
    let exports = module
        .exports()
        .map(|e| Item {
            module: String::new(),
            name: e.name().to_owned(),
            ty: extern_type_string(&e.ty()),
        })
        .collect();
    let problems = confinement_problems(&module);
    Ok(Report {
        imports,
        exports,
        confined: problems.is_empty(),
        problems,
    })
}

fn same(ty: &wasmtime::FuncType, sig: (&[Num], &[Num])) -> bool {
    let (params, results) = sig;
    ty.params().len() == params.len()
        && ty.results().len() == results.len()
        && ty.params().zip(params).all(|(t, n)| n.matches(&t))
        && ty.results().zip(results).all(|(t, n)| n.matches(&t))
}

/// Every confinement problem of a compiled module, imports first.
pub(crate) fn confinement_problems(module: &Module) -> Vec<Problem> {
    let mut problems = Vec::new();
    for i in module.imports() {
        let allowed = if i.module() == abi::MODULE {
            abi::allowed_import(i.name())
        } else {
            None
        };
        match (allowed, i.ty()) {
            (Some(sig), ExternType::Func(f)) => {
                if !same(&f, sig) {
                    problems.push(Problem::WrongImportType {
                        name: i.name().to_owned(),
                    });
                }
            }
            _ => problems.push(Problem::ForbiddenImport {
                module: i.module().to_owned(),
                name: i.name().to_owned(),
            }),
        }
    }
    match module.get_export(abi::EXPORT_MEMORY) {
        None => problems.push(Problem::MissingExport {
            name: abi::EXPORT_MEMORY,
        }),
        Some(ExternType::Memory(m)) if !m.is_64() && !m.is_shared() => {}
        Some(_) => problems.push(Problem::WrongExportType {
            name: abi::EXPORT_MEMORY.to_owned(),
        }),
    }
    for name in [abi::EXPORT_DELIVER, abi::EXPORT_NOTIFY] {
        let Some(sig) = abi::entry_point(name) else {
            continue;
        };
        match module.get_export(name) {
            None if name == abi::EXPORT_DELIVER => problems.push(Problem::MissingExport { name }),
            None => {}
            Some(ExternType::Func(f)) if same(&f, sig) => {}
            Some(_) => problems.push(Problem::WrongExportType {
                name: name.to_owned(),
            }),
        }
    }
    problems
}
