"""The study's models in plain PyTorch, module for module as the specs in graphs/ describe them.

ResNet-18 and VGG-19 are written out here exactly as torchvision defines them (torchvision
from PyPI does not match the local torch wheel), so state_dict keys, shapes and order are
torchvision's: `conv1.weight`, `bn1.running_mean`, `layer1.0.conv1.weight`, `features.0.weight`…
"""
import torch
from torch import nn


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock."""

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """torchvision.models.resnet18; with `classes=None` the trunk up to global average pooling."""

    def __init__(self, classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        if classes is not None:
            self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x) if hasattr(self, "fc") else x


def vgg19_features():
    """torchvision.models.vgg19().features (configuration "E", no batch norm)."""
    layers, cin = [], 3
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
            cin = v
    return nn.Sequential(*layers)


class CNNLSTM(nn.Module):
    """A CNN over every frame ([B, T, 3, H, W] → [B*T, 512]), an LSTM over the frame vectors,
    the last step projected to the classes (graphs/resnet18_lstm.graph, vgg19_lstm.graph)."""

    def __init__(self, cnn, classes):
        super().__init__()
        self.cnn = cnn
        self.lstm = nn.LSTM(512, 256, batch_first=True)
        self.classifier = nn.Linear(256, classes)

    def forward(self, frames):
        b, t = frames.shape[:2]
        x = self.cnn(frames.reshape(b * t, *frames.shape[2:]))
        if x.dim() == 4:  # VGG features: global average pooling to 512
            x = torch.flatten(x.mean(dim=(2, 3), keepdim=True), 1)
        h, _ = self.lstm(x.reshape(b, t, -1))
        return self.classifier(h[:, -1])


class BiLSTM(nn.Module):
    """graphs/bilstm.graph, bilstm_attention1d.graph and bilstm_attention2d.graph:
    `attention` None, 1 (a weight per frame) or 64 (a weight per frame and feature)."""

    def __init__(self, classes, attention=None):
        super().__init__()
        self.lstm = nn.LSTM(128, 32, batch_first=True, bidirectional=True)
        self.attention_size = attention
        if attention is not None:
            self.attention = nn.Linear(64, attention)
        self.classifier = nn.Linear(64, classes)

    def forward(self, mfcc):
        h, _ = self.lstm(mfcc)
        if self.attention_size is None:
            return self.classifier(h[:, -1])
        weights = torch.softmax(self.attention(torch.tanh(h)), dim=1)  # over time
        return self.classifier((weights * h).sum(dim=1))


def study_models():
    """Each spec's name, its class count in the study, and the PyTorch module."""
    return {
        "bilstm": (5, BiLSTM(5)),
        "bilstm_attention1d": (5, BiLSTM(5, attention=1)),
        "bilstm_attention2d": (5, BiLSTM(5, attention=64)),
        "resnet18": (1000, ResNet18(1000)),
        "resnet18_lstm": (51, CNNLSTM(ResNet18(classes=None), 51)),
        "vgg19_lstm": (51, CNNLSTM(vgg19_features(), 51)),
    }
