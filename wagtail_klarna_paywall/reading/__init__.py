"""Who may read what: the gate, what a reader holds, read-on grants after a purchase, the render cache
and the preview modes."""
