"""Safety: classifiers behind one interface, the serving gate, canned replies."""
