import Foundation
@testable import GlassboxAnalysis
import GlassboxReference
import Testing

/// scikit-learn's numbers from tools/reference/tsne_fixtures.py, on data rebuilt here from detrand.
struct TSNEFixture: Decodable {
  var n: Int
  var d: Int
  var k: Int
  var x_checksum: Double
  var fixed_embedding_trustworthiness: [String: Double]
  var tsne_exact_trustworthiness: [Double]
  var tsne_barnes_hut_trustworthiness: [Double]

  static func load() throws -> TSNEFixture {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/tsne.json")
    return try JSONDecoder().decode(TSNEFixture.self, from: Data(contentsOf: url))
  }

  /// X[i] = 2·centers[i % K] + noise[i], in Float as the script computes it.
  func points() throws -> (Points, [Int]) {
    let centers = DeterministicTensors.values("tsne.centers", count: k * d)
    let noise = DeterministicTensors.values("tsne.noise", count: n * d)
    var values = [Double](repeating: 0, count: n * d)
    for i in 0..<n {
      for j in 0..<d { values[i * d + j] = Double(Float(2) * centers[(i % k) * d + j] + noise[i * d + j]) }
    }
    return (try Points(count: n, dimensions: d, values: values), (0..<n).map { $0 % k })
  }
}

@Suite struct TSNETests {
  @Test func fixtureDataMatchesTheScript() throws {
    let f = try TSNEFixture.load()
    let (x, _) = try f.points()
    #expect(abs(x.values.reduce(0, +) - f.x_checksum) < 1e-6)
  }

  @Test(arguments: [5, 10])
  func trustworthinessMatchesScikitLearn(k: Int) throws {
    let f = try TSNEFixture.load()
    let (x, _) = try f.points()
    let fixed = try Points(count: x.count, dimensions: 2, values: (0..<x.count).flatMap { [x[$0, 0], x[$0, 1]] })
    let expected = try #require(f.fixed_embedding_trustworthiness[String(k)])
    let ours = try Trustworthiness.score(input: x, embedding: fixed, neighbors: k)
    #expect(abs(ours - expected) < 1e-12, "ours \(ours), scikit-learn \(expected)")
  }

  @Test func trustworthinessOfTheInputItselfIsOne() throws {
    let f = try TSNEFixture.load()
    let (x, _) = try f.points()
    #expect(try Trustworthiness.score(input: x, embedding: x, neighbors: 5) == 1)
  }

  @Test func trustworthinessRefusesBadNeighbourCounts() throws {
    let x = try Points(rows: [[0], [1], [2], [3]])
    #expect(throws: AnalysisError.self) { try Trustworthiness.score(input: x, embedding: x, neighbors: 2) }
    #expect(throws: AnalysisError.self) { try Trustworthiness.score(input: x, embedding: x, neighbors: 0) }
  }

  @Test func exactEmbeddingIsAsTrustworthyAsScikitLearns() throws {
    let f = try TSNEFixture.load()
    let (x, _) = try f.points()
    let result = try TSNE().embed(x)
    let ours = try Trustworthiness.score(input: x, embedding: result.embedding, neighbors: 5)
    let theirs = try #require(f.tsne_exact_trustworthiness.first)
    print(
      "t-SNE fixture: trustworthiness ours \(ours), scikit-learn exact \(theirs), Barnes-Hut \(f.tsne_barnes_hut_trustworthiness.first ?? .nan); KL \(result.klDivergence) after \(result.iterations) iterations"
    )
    #expect(abs(ours - theirs) <= 0.02, "ours \(ours), scikit-learn \(theirs)")
  }

  @Test func embeddingIsDeterministic() throws {
    let f = try TSNEFixture.load()
    let (full, _) = try f.points()
    let x = try Points(count: 60, dimensions: full.dimensions, values: Array(full.values.prefix(60 * full.dimensions)))
    var tsne = TSNE()
    tsne.perplexity = 10
    tsne.iterations = 300
    tsne.initialization = .random
    tsne.seed = 7
    #expect(try tsne.embed(x).embedding == tsne.embed(x).embedding)
  }

  @Test func perplexityMustBeBelowThePointCount() throws {
    let x = try Points(rows: [[0, 0], [1, 1], [2, 2]])
    #expect(throws: AnalysisError.self) { try TSNE().embed(x) }
  }
}

@Suite struct BarnesHutTests {
  @Test func barnesHutEmbeddingIsAsTrustworthyAsScikitLearns() throws {
    let f = try TSNEFixture.load()
    let (x, _) = try f.points()
    var tsne = TSNE()
    tsne.method = .barnesHut
    let result = try tsne.embed(x)
    let ours = try Trustworthiness.score(input: x, embedding: result.embedding, neighbors: 5)
    let theirs = try #require(f.tsne_barnes_hut_trustworthiness.first)
    print(
      "Barnes-Hut t-SNE fixture: trustworthiness ours \(ours), scikit-learn \(theirs); KL \(result.klDivergence) after \(result.iterations) iterations"
    )
    #expect(abs(ours - theirs) <= 0.02, "ours \(ours), scikit-learn \(theirs)")
  }

  /// With angle 0 no cell is summarised: the tree gradient is the exact gradient on P's
  /// neighbour entries; with every point a neighbour (k = n − 1), the exact one.
  @Test func treeWithAngleZeroIsExact() throws {
    let f = try TSNEFixture.load()
    let (full, _) = try f.points()
    let n = 40
    let x = try Points(count: n, dimensions: full.dimensions, values: Array(full.values.prefix(n * full.dimensions)))
    let perplexity = 13.0  // 3·13 + 1 = 40 ≥ n − 1: every point is a neighbour
    let sparse = SparseJointProbabilities(x, perplexity: perplexity)
    let dense = TSNE.jointProbabilities(
      distances: Distances.squared(x).map { Double(Float($0)) }, count: n, perplexity: perplexity)
    let y = TSNE.gaussian(count: 2 * n, seed: 3).map { $0 * 1e4 }
    var g1 = [Double](repeating: 0, count: 2 * n), g2 = g1
    var num = [Double](repeating: 0, count: n * n)
    let kl1 = BarnesHut.gradient(p: sparse, exaggeration: 1, y: y, count: n, angle: 0, grad: &g1, computeError: true)
    let kl2 = TSNE.gradient(p: dense, exaggeration: 1, y: y, count: n, num: &num, grad: &g2, computeError: true)
    let scale = g2.map(abs).max() ?? 1
    for k in 0..<(2 * n) { #expect(abs(g1[k] - g2[k]) <= 1e-6 * scale, "coordinate \(k): \(g1[k]) vs \(g2[k])") }
    #expect(abs((kl1 ?? 0) - (kl2 ?? 0)) < 1e-5)
  }
}
