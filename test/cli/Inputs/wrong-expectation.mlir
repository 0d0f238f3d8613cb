func.func @f(%x: tensor<2x4xf32>, %w: tensor<4xf32>) {
  // expected-error@+1 {{this text is not in the message}}
  %0 = "mpk.rmsnorm"(%x, %w) {eps = -1.0 : f32} : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  return
}
