import Foundation

/// Paths of the repository and of this target's fixtures.
enum Repo {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()
  static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

  static func fixture(_ relative: String) -> String { fixtures.appendingPathComponent(relative).path }
}
