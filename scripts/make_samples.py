"""Write src/tinymnist/samples/: the first CHECK_IMAGES test images of each dataset, shipped with the
package so that `tinymnist export` checks its file without a dataset (tinymnist.export).

    TINYMNIST_DATA=... python scripts/make_samples.py
"""

import gzip
import io

import numpy as np

from tinymnist import data, export

if __name__ == "__main__":
    for name in data.DATASETS:
        images = data.load(dataset=name, download=False).test_images[: export.CHECK_IMAGES].numpy()
        buffer = io.BytesIO()
        np.save(buffer, images, allow_pickle=False)
        path = export.SAMPLES / f"{name}.npy.gz"
        path.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
        print(f"wrote {path}: {images.shape} {images.dtype}")
