@0xc20ec88cf57c1325;

# The object the benchmarks talk to: the capnp twin of the pola bench object.
interface Bench {
  # Round trip: answers with its argument.
  echo @0 (payload :Data) -> (payload :Data);
  # A note: the closest capnp has to op:deliver-only (Cap'n Proto calls
  # always get a Return; `-> stream` needs stream.capnp, which Debian's
  # capnproto package does not ship).
  note @1 (n :Int64) -> ();
  # Pipelined chain x.a().b().c(): a and b answer the object itself.
  a @2 () -> (next :Bench);
  b @3 () -> (next :Bench);
  c @4 () -> (v :Int64);
}
