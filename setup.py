"""duality: self-supervised learning of image representations in JAX/Flax.

Built around Garrido et al., "On the duality between contrastive and
non-contrastive self-supervised learning" (ICLR 2023).

CPU install (what the README commands do):   pip install -e ".[test,cpu]"
GPU (CUDA 12) users:   pip install -e . "jax[cuda12]==0.10.2"
TPU users:             pip install -e . "jax[tpu]==0.10.2"
"""
from setuptools import find_packages, setup

setup(
    name="duality",
    version="0.1.0",
    description="Sample- and dimension-contrastive self-supervised learning in JAX/Flax",
    packages=find_packages(include=["duality", "duality.*"]),
    package_data={"duality.models.onednn": ["conv.cc"]},  # compiled on first use (duality/models/onednn)
    python_requires=">=3.11",
    install_requires=[
        # 0.10.2 is the newest jax installable on the project's CPU machines;
        # the pin keeps CI, laptops and clusters on one numerical behaviour.
        "jax==0.10.2",
        "jaxlib==0.10.2",
        "flax>=0.12",
        "optax>=0.2.4",
        "orbax-checkpoint>=0.11",
        "ml-collections>=1.0",
        "tensorflow-datasets>=4.9",
        # clu's metric writers import tensorboard, and tfds builders need
        # importlib_resources; neither is pulled in by them.
        "clu>=0.0.12",
        "tensorboard",
        "importlib_resources",
        # clu's TensorBoard writer and tfds' input pipelines import TensorFlow;
        # the CPU build never competes with jax for an accelerator.
        "tensorflow-cpu",
        "chex>=0.1.87",
        "dm-pix>=0.4",
        "matplotlib",
        "numpy",
    ],
    extras_require={
        # benchmarks/vs_pytorch.py's twin; the CPU build:
        #   pip install torch --index-url https://download.pytorch.org/whl/cpu
        "bench": ["torch"],
        # oneDNN 3.2 (headers + libdnnl.so.3, GNU OpenMP) for the CPU convolutions that duality/models/onednn
        # compiles on first use; without it CPU training keeps XLA's own, 1.5x slower, convolutions.
        "cpu": ["onednn-devel-cpu-gomp==2023.2.0; platform_system == 'Linux' and platform_machine == 'x86_64'"],
        # gs:// workdirs through fsspec instead of TensorFlow's GCS client (EPATH_USE_TF=false; see fileio.py).
        "gcs": ["gcsfs"],
        # pytest-xdist: launch/test.sh runs one worker per core (test files stay whole on one worker);
        # gcsfs and gcp-storage-emulator: the gs:// workdir tests against a GCS server on 127.0.0.1.
        "test": ["pytest>=8", "hypothesis>=6", "pytest-xdist>=3.5", "gcsfs", "gcp-storage-emulator"],
    },
)
