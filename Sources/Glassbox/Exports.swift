// The lower modules' types that the library's API speaks in, so that `import Glassbox` is
// all a user writes.
@_exported import struct GlassboxFormat.Provenance
@_exported import struct GlassboxFormat.Training
@_exported import enum GlassboxIR.DType
@_exported import struct GlassboxIR.Diagnostic
@_exported import struct GlassboxIR.Graph
@_exported import struct GlassboxIR.InputRecipe
@_exported import enum GlassboxIR.RecipeKind
@_exported import struct GlassboxIR.SourceText
@_exported import enum GlassboxIR.TapKind
@_exported import struct GlassboxIR.Tensor
