"""Image operations that make training inputs: seeded degradations (noise, camera processing,
blur, resampling, JPEG, quantisation, holes) and the YAML pipeline that chains them. Every op
draws its parameters with `sample(gen, shape)` and applies them with `apply(x, params)`."""
