"""Pure loss functions: arrays in, arrays out, no parameters or state."""
