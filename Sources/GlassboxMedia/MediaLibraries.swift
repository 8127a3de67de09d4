import CFFmpeg
import CSndfile

/// The media libraries this build runs on. Only this module sees FFmpeg and libsndfile.
public enum MediaLibraries {
  /// Name and version of each library, in a fixed order.
  public static var versions: [(String, String)] {
    func ff(_ v: UInt32) -> String { "\(v >> 16).\((v >> 8) & 0xFF).\(v & 0xFF)" }
    return [
      ("libavformat", ff(avformat_version())),
      ("libavcodec", ff(avcodec_version())),
      ("libavutil", ff(avutil_version())),
      ("libswscale", ff(swscale_version())),
      ("libswresample", ff(swresample_version())),
      ("libsndfile", String(cString: sf_version_string())),
    ]
  }
}
