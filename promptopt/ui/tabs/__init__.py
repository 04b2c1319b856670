"""One module per tab; each ``build(ctx, state, ...)`` makes its components and wires them."""
