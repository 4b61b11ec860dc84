import sys

from keras_dlpa_cli import main

sys.exit(main())
