"""Expected tap outputs — CAM, Grad-CAM (image and frame by frame through the LSTM), Grad-CAM++,
attention weights, normalisation and bilinear upsampling — computed by PyTorch in float64 on
deterministic inputs and weights (detrand.py ≡ GlassboxReference.DeterministicTensors), with the
conventions of forward_fixtures.py: a fixture is a spec name with bindings and its outputs.

    /tmp/torchvenv/bin/python tools/reference/gradcam_fixtures.py Tests/GlassboxExplainTests/Fixtures

Grad-CAM is written out by hand (hooks would hide nothing here): the class score's gradient with
respect to the feature map, its spatial mean as channel weights, the weighted channel sum, ReLU.
For the CNN-LSTM every frame's feature map is a leaf of the same backward pass, so frame t's map
is the gradient of the clip's score through the LSTM with respect to that frame alone.

Normalisation (as `LowerTaps`): (x − min) / (max − min + 1e-7) over each frame or each clip.
Relevance per frame: m_t / (Σ_t m_t + 1e-7), m_t the mean of frame t's raw map.

pytorch-grad-cam (`grad-cam` on PyPI) is not used: it imports cv2 and torchvision, whose wheels
do not match the local torch; the manual Grad-CAM here is its `GradCAM` without the resizing.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

import detrand
from models import BiLSTM, CNNLSTM, ResNet18

torch.set_default_dtype(torch.float64)


def inp(name, shape):
    return torch.from_numpy(detrand.tensor("input:" + name, shape).astype(np.float64))


def load(model):
    shapes = {k: (list(v.shape), "i64" if v.dtype == torch.int64 else "f32") for k, v in model.state_dict().items()}
    state = {k: torch.from_numpy(v if v.dtype == np.int64 else v.astype(np.float64))
             for k, v in detrand.parameters(shapes).items()}
    model.load_state_dict(state)
    return model.double().eval()


def tensor_json(t, stride=1):
    t = t.detach()
    return {"shape": list(t.shape), "stride": stride, "data": [float(v) for v in t.reshape(-1)[::stride].tolist()]}


def minmax(x, dims):
    lo = x.amin(dim=dims, keepdim=True)
    hi = x.amax(dim=dims, keepdim=True)
    return (x - lo) / (hi - lo + 1e-7)


def gradcam_maps(features, grads):
    """features, grads: [N, K, h, w] → Grad-CAM [N, h, w] and Grad-CAM++ [N, h, w]."""
    alpha = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((alpha * features).sum(dim=1))
    g2, g3 = grads ** 2, grads ** 3
    a = g2 / (2 * g2 + features.sum(dim=(2, 3), keepdim=True) * g3 + 1e-6)
    weights = (F.relu(grads) * a).sum(dim=(2, 3), keepdim=True)
    campp = F.relu((weights * features).sum(dim=1))
    return cam, campp


def resnet_image(classes=5, size=64, batch=2):
    model = load(ResNet18(classes))
    x = inp("image", [batch, 3, size, size])
    h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    f = model.layer4(model.layer3(model.layer2(model.layer1(h))))
    f.retain_grad()
    logits = model.fc(torch.flatten(model.avgpool(f), 1))
    out = {"logits": tensor_json(logits)}
    # The class whose map has the most positive evidence (random weights leave some classes
    # with an all-negative map, whose Grad-CAM is all zero and would test nothing).
    klass = int(torch.einsum("ck,nkhw->cnhw", model.fc.weight, f).amax(dim=(1, 2, 3)).argmax())
    # CAM for class `klass`: Σ_k w_ck f_k.
    cam = torch.einsum("k,nkhw->nhw", model.fc.weight[klass], f)
    out["cam"] = tensor_json(cam)
    out["cam.normalized"] = tensor_json(minmax(cam, (1, 2)))
    for name, seed in [("class", F.one_hot(torch.full([batch], klass), classes)),
                       ("predicted", F.one_hot(logits.argmax(1), classes))]:
        f.grad = None
        (logits * seed.double()).sum().backward(retain_graph=True)
        cam, campp = gradcam_maps(f.detach(), f.grad.detach())
        out[f"gradcam.{name}"] = tensor_json(cam)
        out[f"gradcampp.{name}"] = tensor_json(campp)
        out[f"gradcam.{name}.normalized"] = tensor_json(minmax(cam, (1, 2)))
    return {"spec": "resnet18", "bindings": {"B": batch, "C": classes, "H": size, "W": size}, "class": klass,
            "outputs": out}


def resnet_lstm(classes=5, size=64, frames=4):
    model = load(CNNLSTM(ResNet18(classes=None), classes))
    x = inp("frames", [1, frames, 3, size, size])
    cnn = model.cnn
    h = cnn.maxpool(cnn.relu(cnn.bn1(cnn.conv1(x.reshape(frames, 3, size, size)))))
    f = cnn.layer4(cnn.layer3(cnn.layer2(cnn.layer1(h))))  # [T, 512, h, w], one map per frame
    f.retain_grad()
    v = torch.flatten(cnn.avgpool(f), 1).reshape(1, frames, -1)
    hs, _ = model.lstm(v)
    logits = model.classifier(hs[:, -1])
    out = {"logits": tensor_json(logits)}
    sums = []
    for k in range(classes):  # the class with the largest Grad-CAM mass, as above
        f.grad = None
        logits[0, k].backward(retain_graph=True)
        sums.append(float(gradcam_maps(f.detach(), f.grad.detach())[0].sum()))
    klass = int(np.argmax(sums))
    for name, k in [("class", klass), ("predicted", int(logits.argmax(1)))]:
        f.grad = None
        logits[0, k].backward(retain_graph=True)
        cam, campp = gradcam_maps(f.detach(), f.grad.detach())
        cam = cam.reshape(1, frames, *cam.shape[1:])
        campp = campp.reshape(1, frames, *campp.shape[1:])
        out[f"gradcam.{name}"] = tensor_json(cam)
        out[f"gradcampp.{name}"] = tensor_json(campp)
        out[f"gradcam.{name}.normalized.frame"] = tensor_json(minmax(cam, (2, 3)))
        out[f"gradcam.{name}.normalized.clip"] = tensor_json(minmax(cam, (1, 2, 3)))
        m = cam.mean(dim=(2, 3))
        out[f"gradcam.{name}.relevance"] = tensor_json(m / (m.sum(dim=1, keepdim=True) + 1e-7))
    return {"spec": "resnet18_lstm", "bindings": {"B": 1, "T": frames, "C": classes, "H": size, "W": size},
            "class": klass, "outputs": out}


def attention(kind):
    size = 1 if kind == 1 else 64
    model = load(BiLSTM(5, attention=size))
    x = inp("mfcc", [1, 768, 128]).requires_grad_(True)
    h, _ = model.lstm(x)
    weights = torch.softmax(model.attention(torch.tanh(h)), dim=1)
    logits = model.classifier((weights * h).sum(dim=1))
    stride = 1 if kind == 1 else 61  # 2-D weights: every 61st of 49152 values keeps the file small
    w = weights.reshape(1, 768) if kind == 1 else weights
    # Saliency: gradient of the predicted class's score × input, every 97th of 98304 values.
    logits[0, int(logits.argmax(1))].backward()
    return {"spec": f"bilstm_attention{kind}d", "bindings": {"B": 1, "C": 5},
            "outputs": {"logits": tensor_json(logits), "attention": tensor_json(w, stride),
                        "saliency": tensor_json(x.grad * x, 97)}}


def upsample():
    x = inp("map", [2, 3, 4])
    out = {}
    for h, w in [(7, 9), (12, 16), (3, 4), (5, 2)]:
        out[f"{h}x{w}"] = tensor_json(F.interpolate(x[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0])
    return {"input": "map", "shape": [2, 3, 4], "outputs": out}


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    fixtures = {"resnet18_taps": resnet_image(), "resnet18_lstm_taps": resnet_lstm(),
                "bilstm_attention1d_taps": attention(1), "bilstm_attention2d_taps": attention(2),
                "upsample": upsample()}
    for name, fixture in fixtures.items():
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump(fixture, f)
        print(name, {k: v["shape"] for k, v in fixture["outputs"].items()})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Tests/GlassboxExplainTests/Fixtures")
