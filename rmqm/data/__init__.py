"""Offline image datasets as float tensors in [0, 1] (ImageDataset), loaded by name."""

from rmqm.data.dataset import DataFallbackWarning, DatasetNotFoundError, ImageDataset
from rmqm.data.offline import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIRS,
    FASHION_MNIST_ENV,
    FASHION_MNIST_FILES,
    FASHION_MNIST_HELP,
    TEXTURE_IMAGES,
    FashionMNISTNotFoundError,
    fashion_mnist_available,
    fashion_mnist_files,
    load_digits,
    load_faces,
    load_fashion_mnist,
    load_textures,
    read_idx,
)
from rmqm.data.packages import (
    ANIMAL_MNIST_CLASSES,
    ANIMAL_MNIST_FILES,
    MNIST_FILE,
    DataIntegrityError,
    PackageDataNotFoundError,
    PackagedFile,
    animal_mnist_arrays,
    default_cache_dir,
    load_animal_mnist,
    mnist_arrays,
    packaged_file,
)
from rmqm.data.packages import load_mnist as load_mnist_package
from rmqm.data.registry import (
    FALLBACKS,
    OFFLINE_DATASETS,
    TRANSFER_TASKS,
    available_datasets,
    data_identity,
    data_record,
    load_dataset,
    resolve_data,
    transfer_tasks,
)
from rmqm.data.torchvision_sets import (
    CIFAR10_CLASSES,
    DATA_ROOT_ENV,
    TORCHVISION_FOLDERS,
    TORCHVISION_HELP,
    default_data_root,
    load_caltech101,
    load_cifar10,
    load_kmnist,
    load_mnist,
    load_omniglot,
    torchvision_folder,
)

__all__ = ['DatasetNotFoundError', 'DataFallbackWarning', 'ImageDataset', 'FASHION_MNIST_ENV', 'FASHION_MNIST_DIRS',
           'FASHION_MNIST_FILES', 'FASHION_MNIST_CLASSES', 'FASHION_MNIST_HELP', 'FashionMNISTNotFoundError',
           'read_idx', 'fashion_mnist_files', 'fashion_mnist_available', 'load_fashion_mnist', 'load_digits',
           'load_faces', 'TEXTURE_IMAGES', 'load_textures', 'OFFLINE_DATASETS', 'TRANSFER_TASKS', 'FALLBACKS',
           'available_datasets', 'transfer_tasks', 'load_dataset', 'resolve_data', 'data_identity', 'data_record',
           'DATA_ROOT_ENV', 'TORCHVISION_HELP', 'TORCHVISION_FOLDERS', 'default_data_root', 'torchvision_folder',
           'load_mnist', 'load_kmnist', 'CIFAR10_CLASSES', 'load_cifar10', 'load_omniglot', 'load_caltech101',
           'PackagedFile', 'MNIST_FILE', 'ANIMAL_MNIST_FILES', 'ANIMAL_MNIST_CLASSES', 'PackageDataNotFoundError',
           'DataIntegrityError', 'default_cache_dir', 'packaged_file', 'mnist_arrays', 'animal_mnist_arrays',
           'load_mnist_package', 'load_animal_mnist']
