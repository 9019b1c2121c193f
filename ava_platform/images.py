"""The runtime images every job runs in (`ava images build`, `make images`,
`python -m ava_platform.images`): the names the CLI and scripts use. The builder itself talks to
the Docker engine and so lives in the executor (executor/runtime_images.py); this module
imports no `docker`.

Errors: errors.BuildFailed (also known here as ImageBuildError, the name the CLI catches).
"""

from __future__ import annotations

import sys

from ava_platform.errors import BuildFailed
from ava_platform.executor.runtime_images import (
    RUNTIMES,
    ImageReport,
    build_images,
    main,
    runtime_image_tag,
)

ImageBuildError = BuildFailed  # one error type: a failed runtime image build is a BuildFailed

__all__ = [
    "RUNTIMES",
    "ImageBuildError",
    "ImageReport",
    "build_images",
    "main",
    "runtime_image_tag",
]

if __name__ == "__main__":
    sys.exit(main())
