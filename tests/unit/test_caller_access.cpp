// placeholder: implemented by its owner
#include <gtest/gtest.h>
