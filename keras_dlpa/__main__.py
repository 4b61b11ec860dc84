import sys

from keras_dlpa.cli import main

sys.exit(main())
