"""vitrestore: photo restoration with a conditional ViT-GAN."""
