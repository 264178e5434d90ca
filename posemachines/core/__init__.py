"""The lowest layer: part sets, config defaults, user-facing errors and drawing primitives."""
