"""A run's lifecycle: the one builder, the loop, checkpoints and resume, guards, tracking,
periodic evaluation, distributed processes, and rebuilding a trained run for sampling."""
