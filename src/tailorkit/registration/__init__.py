"""registration: SAME++ (arXiv 2311.14986) beside ANTs, elastix, SimpleITK and convexAdam. See docs/registration.md."""
