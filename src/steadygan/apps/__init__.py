"""What a trained generator is used for: sample pictures and image completion."""
