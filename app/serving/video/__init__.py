"""Video autoencoders: a clip's time axis walked in chunks (`timeline`), so that its memory does
not grow with its frames."""
