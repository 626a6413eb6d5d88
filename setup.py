"""Package metadata for nri-tf: Neural Relational Inference in TensorFlow/Keras."""

from setuptools import find_packages, setup

setup(
    name="nri-tf",
    version="0.1.0",
    description="Neural Relational Inference (Kipf et al., ICML 2018) in TensorFlow/Keras",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.13",
    packages=find_packages(include=["nri_tf", "nri_tf.*", "data_pipelines", "data_pipelines.*",
                                    "trainers", "trainers.*"]),
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "tensorflow-probability>=0.25,<0.26",
        "tf-keras>=2.21,<2.22",
        "tensorboard>=2.21,<2.22",
        "numpy>=1.26,<3",
        "matplotlib>=3.9,<4",
    ],
    entry_points={
        "console_scripts": [
            "nri-train=nri_tf.cli.train:main",
            "nri-evaluate=nri_tf.cli.evaluate:main",
            "nri-export=nri_tf.cli.export:main",
            "nri-experiments=nri_tf.cli.experiments:main",
            "nri-generate=data_pipelines.generate:main",
            "nri-refit=nri_tf.cli.refit:main",
        ],
    },
    extras_require={
        "test": ["pytest>=8,<10", "pytest-xdist>=3.5,<4", "tensorflow-serving-api>=2.21,<2.22"],
    },
    license="MIT",
)
