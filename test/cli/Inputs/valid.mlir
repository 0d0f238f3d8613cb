func.func @f(%a: tensor<2x4xf32>) -> tensor<2x4xf32> {
  %0 = "mpk.add"(%a, %a) : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}
