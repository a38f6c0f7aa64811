"""Every replaceable policy: optimizers, early stoppers, launchers (and, later, ablators and
distribution strategies). Each kind has one entry-point group; the built-ins are declared in
this package's own pyproject under the same groups a third-party package would use.
Plugins know no sockets and no kernel internals."""
