"""socratic-tutor's shared core: conversation schema, tutor prompt, readers, importers, metrics, CLI,
starting and stopping server processes (`tutor.proc`).

Light dependencies only (pydantic, pyyaml, tqdm): every stage package may import `tutor`,
`tutor` imports none of them.
"""

__version__ = "0.1.0"
