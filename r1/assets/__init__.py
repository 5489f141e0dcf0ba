"""Files shipped with the package: `base-tiny/`, the built-in base model that `r1 run` starts R1-Zero from."""
