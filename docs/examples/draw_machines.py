"""Draw the machines shown in these docs into docs/images/.

.svg, .png and .pdf need Graphviz's ``dot`` program; .dot and .mmd are text.
"""

from pathlib import Path

from door import Door
from task_states import TASK

from jumpstarter import LIFECYCLE

IMAGES = Path(__file__).resolve().parent.parent / "images"

if __name__ == "__main__":
    IMAGES.mkdir(exist_ok=True)
    LIFECYCLE.draw(IMAGES / "lifecycle.svg")
    Door.position.draw(IMAGES / "door.svg")  # on the class, the declaration itself
    TASK.draw(IMAGES / "task.svg")
    print("\n".join(sorted(p.name for p in IMAGES.iterdir())))
