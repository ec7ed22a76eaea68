"""Inpainting operators beyond homogeneous diffusion: biharmonic, edge-enhancing (EED) and total variation."""
