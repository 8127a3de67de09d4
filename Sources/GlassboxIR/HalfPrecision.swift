extension Float {
  /// The value of an IEEE 754 binary16 (`float16`, PyTorch's `torch.half`) bit pattern:
  /// sign, 5 exponent bits (bias 15), 10 mantissa bits. Every half value is exact in `Float`.
  public init(float16Bits bits: UInt16) {
    let sign: UInt32 = UInt32(bits >> 15) << 31
    let exponent = Int(bits >> 10) & 0x1F
    let mantissa = UInt32(bits & 0x3FF)
    if exponent == 0 {
      // Zero or subnormal: mantissa · 2^−24.
      let magnitude = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
      self = sign == 0 ? magnitude : -magnitude
    } else if exponent == 31 {
      self = Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))  // infinity or NaN
    } else {
      self = Float(bitPattern: sign | UInt32(exponent + 112) << 23 | mantissa << 13)
    }
  }

  /// The value of a `bfloat16` bit pattern (the top half of a `Float`'s).
  public init(bfloat16Bits bits: UInt16) { self = Float(bitPattern: UInt32(bits) << 16) }
}
