"""Tests of the simulator (a package, so its module names do not clash with tests/)."""
