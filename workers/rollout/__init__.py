"""Online judgement of canaries: the evidence from the feedback app's quality counts, an
always-valid sequential test, and the controller that promotes or rolls back and records its
decision (``prodcat models judge``)."""
