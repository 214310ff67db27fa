"""Small helpers every stage may use, each a module of its own: atomic files (``io``), CJK
text (``text``), process memory (``memory``), quieting third-party output (``noise``),
figures (``plots``) and the precision rule shared by training and its estimate
(``precision``)."""
