"""Network building blocks: encoder, transformer blocks, generator, discriminator."""
