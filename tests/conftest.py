import sys
from pathlib import Path

# Test-only motion factories (synthetic_walk.py) live beside the tests.
sys.path.insert(0, str(Path(__file__).parent))
