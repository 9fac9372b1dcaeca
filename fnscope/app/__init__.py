"""The top of the tree: the composed settings, the process roles and the HTTP app that wire the components."""
