"""slmlab: find the repetitive calls of an LLM agent that a small language model can take over, and prove it.

One module per step of the LLM-to-SLM conversion: `collect`, `profile`, `curate`, `cluster`, `label`,
`select`, `specialize`, `evaluate`, `route`, `savings`. Heavy dependencies (torch, transformers) are
imported only inside the functions that need them, so `import slmlab` stays fast.

Usage:
    >>> import slmlab
    >>> slmlab.__version__
    '0.1.0'
"""

__version__ = "0.1.0"

# Installs a logging filter for one harmless offline notice of bitsandbytes (see slmlab.runtime.models);
# cheap: models imports no torch.
import slmlab.runtime.models  # noqa: E402, F401
