"""The `catalog` stage: real music from Debian packages -> decoded reference catalog with a manifest."""
