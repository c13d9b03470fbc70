"""metallb.io resources parsed into one immutable Config, with every validation rule."""
