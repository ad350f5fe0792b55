"""tools/ holds scripts, not a package: make `import taxigen` find tools/taxigen.py."""

import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[1]
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))
