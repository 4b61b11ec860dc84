"""One registration decorator for every serialisable keras-dlpa object."""

import keras

PACKAGE = "keras_dlpa"


def register(cls):
    """Registers `cls` with Keras serialisation under the `keras_dlpa` package.

    Registered objects round-trip through `get_config`/`from_config` and
    `.keras` archives without `custom_objects`.
    """
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)
