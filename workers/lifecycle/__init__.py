"""Model lifecycle: the model store, the control topic, the promotion gate, publish/promote
(``prodcat publish``/``models``), the model set a worker serves and its hot swap."""
