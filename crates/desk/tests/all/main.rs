//! Tests that attack the desk through its real HTTP server: a desk opened
//! on a temporary state folder, served by axum on a real loopback port,
//! driven with raw HTTP/1.1 written by hand over `TcpStream` (so every
//! header, and malformed requests, are under the test's control), with
//! the real stock and hostile apps running in the sandbox.
//!
//! - `http`: hostile requests (token, Host, Origin, bodies, paths, JSON,
//!   ids, garbage, slowloris): the documented status, the security headers
//!   on refusals too, no CORS, and the desk's state unchanged afterwards;
//! - `install`: hostile packages, Granma's warnings, narrowed and refused
//!   decisions;
//! - `launch`: the editor saving, revocation, close and relaunch; the
//!   hostile app's attack;
//! - `powerbox`: runtime requests answered, refused, or left pending;
//! - `persist`: what survives a restart of the desk;
//! - `stopped`: an app stopped by its budget across turns, said in its
//!   window and restarted fresh;
//! - `browser`: the browser against real sites on loopback: pages,
//!   links, images, forms, and the 2002 red team's attacks by the hostile
//!   renderer and a conspiring server.

mod browser;
mod http;
mod install;
mod launch;
mod persist;
mod powerbox;
mod site;
mod stopped;
mod support;
